package queuesplit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// Access is how a cluster reaches SQS: a region, an endpoint for SQS-compatible servers, and
// static credentials (from the admin's Secret) or, when empty, the workload's own identity
// (the SDK's default chain: IRSA and EKS Pod Identity, environment, instance role).
type Access struct {
	Region, Endpoint                      string
	AccessKeyID, SecretAccessKey, Session string
}

// NewClient is an SQS client for a.
func NewClient(ctx context.Context, a Access) (*sqs.Client, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if a.Region != "" {
		opts = append(opts, awsconfig.WithRegion(a.Region))
	}
	if a.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(a.AccessKeyID, a.SecretAccessKey, a.Session)))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("SQS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set the registry's sqs.region")
	}
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) {
		if a.Endpoint != "" {
			o.BaseEndpoint = aws.String(a.Endpoint)
		}
	}), nil
}

// Tags mark the queues a split makes, so that a sweep finds what a killed controller left.
const (
	TagSplit = "mirrord-split" // the registry's namespace/name
	TagRole  = "mirrord-role"  // RoleFallback or RoleSession
	TagOwner = "mirrord-owner" // the session's namespace/name, or the cluster of a fallback
)

// Queue roles.
const (
	RoleFallback = "fallback"
	RoleSession  = "session"
)

// QueuePrefix starts the name of every queue a split makes.
const QueuePrefix = "mirrord-"

// maxQueueName is SQS's limit on a queue's name, ".fifo" included.
const maxQueueName = 80

var notQueueNameChars = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// QueueName is the name of a queue the split makes for original (a name or URL): the role's
// letter, a hash of what owns it, and as much of the original's name as fits, so that an
// admin sees which queue it splits; ".fifo" kept.
func QueueName(role string, owner []string, original string) string {
	name := NameOf(original)
	fifo := strings.HasSuffix(name, ".fifo")
	name = notQueueNameChars.ReplaceAllString(strings.TrimSuffix(name, ".fifo"), "-")
	sum := sha256.Sum256([]byte(strings.Join(append([]string{role, original}, owner...), "\x00")))
	letter := "s"
	if role == RoleFallback {
		letter = "f"
	}
	out := QueuePrefix + letter + "-" + hex.EncodeToString(sum[:5]) + "-"
	suffix := ""
	if fifo {
		suffix = ".fifo"
	}
	if room := maxQueueName - len(out) - len(suffix); len(name) > room {
		name = name[:room]
	}
	return out + name + suffix
}

// NameOf is a queue's name, from its name or its URL.
func NameOf(nameOrURL string) string {
	if IsURL(nameOrURL) {
		if u, err := url.Parse(nameOrURL); err == nil {
			return u.Path[strings.LastIndex(u.Path, "/")+1:]
		}
	}
	return nameOrURL
}

// IsURL says whether a consumer's queue variable holds a queue's URL rather than its name.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}

// QueueURL is the URL of a queue given by name or URL.
func QueueURL(ctx context.Context, c *sqs.Client, nameOrURL string) (string, error) {
	if IsURL(nameOrURL) {
		return nameOrURL, nil
	}
	out, err := c.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(nameOrURL)})
	if err != nil {
		return "", fmt.Errorf("queue %s: %w", nameOrURL, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// copiedAttributes are the attributes of the original queue that its split queues share:
// what its consumers and producers rely on (ordering, deduplication, message lifetime).
var copiedAttributes = []types.QueueAttributeName{
	types.QueueAttributeNameFifoQueue,
	types.QueueAttributeNameContentBasedDeduplication,
	types.QueueAttributeNameDeduplicationScope,
	types.QueueAttributeNameFifoThroughputLimit,
	types.QueueAttributeNameVisibilityTimeout,
	types.QueueAttributeNameMessageRetentionPeriod,
	types.QueueAttributeNameMaximumMessageSize,
	types.QueueAttributeNameDelaySeconds,
	types.QueueAttributeNameReceiveMessageWaitTimeSeconds,
	types.QueueAttributeNameKmsMasterKeyId,
	types.QueueAttributeNameKmsDataKeyReusePeriodSeconds,
	types.QueueAttributeNameSqsManagedSseEnabled,
}

// SplitQueueAttributes are the attributes of a queue made for the original, whose attributes
// are original: the copied ones that are set. Delays are not copied: a message was already
// delayed once on its way into the original.
func SplitQueueAttributes(original map[string]string) map[string]string {
	out := map[string]string{}
	for _, a := range copiedAttributes {
		if v, ok := original[string(a)]; ok && v != "" {
			out[string(a)] = v
		}
	}
	delete(out, string(types.QueueAttributeNameDelaySeconds))
	if out[string(types.QueueAttributeNameFifoQueue)] != "true" {
		// Only FIFO queues take these.
		delete(out, string(types.QueueAttributeNameFifoQueue))
		delete(out, string(types.QueueAttributeNameContentBasedDeduplication))
		delete(out, string(types.QueueAttributeNameDeduplicationScope))
		delete(out, string(types.QueueAttributeNameFifoThroughputLimit))
	}
	return out
}

// SplitQueueTags are the tags of a queue made for the original whose tags are original: the
// original's, then the registry's (which win), then the split's own marks.
func SplitQueueTags(original, registry map[string]string, split, role, owner string) map[string]string {
	out := map[string]string{}
	for k, v := range original {
		out[k] = v
	}
	for k, v := range registry {
		out[k] = v
	}
	out[TagSplit], out[TagRole], out[TagOwner] = tagValue(split), role, tagValue(owner)
	return out
}

// tagValue fits SQS's tag value limit (256) and characters.
func tagValue(s string) string {
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// EnsureQueue makes queue name (if it is not there) like the original at originalURL, with
// tags; it returns its URL.
func EnsureQueue(ctx context.Context, c *sqs.Client, name, originalURL string, tags map[string]string) (string, error) {
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(originalURL), AttributeNames: copiedAttributes})
	if err != nil {
		return "", fmt.Errorf("reading queue %s: %w", originalURL, err)
	}
	origTags, err := c.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(originalURL)})
	if err != nil {
		return "", fmt.Errorf("reading the tags of queue %s: %w", originalURL, err)
	}
	all := tags
	if len(origTags.Tags) > 0 {
		all = map[string]string{}
		for k, v := range origTags.Tags {
			all[k] = v
		}
		for k, v := range tags {
			all[k] = v
		}
	}
	out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: SplitQueueAttributes(attrs.Attributes), Tags: all})
	if err != nil {
		return "", fmt.Errorf("creating queue %s: %w", name, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// DeleteQueue deletes a queue the split made; one already gone is fine.
func DeleteQueue(ctx context.Context, c *sqs.Client, queueURL string) error {
	_, err := c.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(queueURL)})
	var missing *types.QueueDoesNotExist
	if err != nil && !errors.As(err, &missing) {
		return fmt.Errorf("deleting queue %s: %w", queueURL, err)
	}
	return nil
}

// SplitQueues lists the queues the split made (by name prefix and tag), by URL, with tags.
func SplitQueues(ctx context.Context, c *sqs.Client) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	p := sqs.NewListQueuesPaginator(c, &sqs.ListQueuesInput{QueueNamePrefix: aws.String(QueuePrefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing queues: %w", err)
		}
		for _, u := range page.QueueUrls {
			tags, err := c.ListQueueTags(ctx, &sqs.ListQueueTagsInput{QueueUrl: aws.String(u)})
			var missing *types.QueueDoesNotExist
			if errors.As(err, &missing) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading the tags of queue %s: %w", u, err)
			}
			if tags.Tags[TagSplit] != "" {
				out[u] = tags.Tags
			}
		}
	}
	return out, nil
}
