-- Run by the rig's MariaDB at every start (--init-file): the app's user, from any address.
DROP USER IF EXISTS ''@'localhost';
CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-secret';
GRANT ALL PRIVILEGES ON *.* TO 'app'@'%';
