"""Write (or restore) a Cinder backup with cinder's own chunked backup driver, without a Cinder
deployment: a real cinder sqlite database (`cinder-manage db sync`), real `objects.Volume` and
`objects.Backup` rows, and the driver class named by `backup_driver` in CONF. No API, scheduler,
volume or backup service runs; what the driver writes is what `cinder-backup` writes.

usage:
  cinder-backup.py CONF FILE [--volume-id VOL] [--parent BACKUP] [--key-id ID]   # back FILE up
  cinder-backup.py CONF BACKUP --restore OUT                                     # cinder's restore

Prints `volume ID`, `backup ID`, `container C`, `prefix P`, `objects N`, one per line.
The compression algorithm is `backup_compression_algorithm` in CONF (the driver reads it when the
module loads, so it cannot be overridden here).
"""
import argparse
import os
import sys

from oslo_config import cfg

ap = argparse.ArgumentParser()
ap.add_argument('conf')
ap.add_argument('file')
ap.add_argument('--volume-id')
ap.add_argument('--parent')
ap.add_argument('--key-id')
ap.add_argument('--restore', metavar='OUT')
a = ap.parse_args()

from cinder import objects  # noqa: E402

objects.register_all()
from cinder.common import config  # noqa: E402,F401  (registers the options)
from cinder import context  # noqa: E402
from cinder.objects import fields  # noqa: E402
from oslo_messaging.notify import notifier  # noqa: E402

CONF = cfg.CONF
# notifications are off (no driver), but the option group must exist
CONF.register_opts(notifier._notifier_opts, group='oslo_messaging_notifications')
CONF([], project='cinder', default_config_files=[a.conf])
import cinder.backup.manager  # noqa: E402,F401  (registers backup_driver)
from oslo_log import log as logging  # noqa: E402
from oslo_utils import importutils  # noqa: E402

logging.setup(CONF, 'cinder')
ctx = context.get_admin_context()
ctx.project_id, ctx.user_id = 'luksfs-project', 'luksfs-user'
driver = importutils.import_class(CONF.backup_driver)(ctx)

if a.restore:
    bk = objects.Backup.get_by_id(ctx, a.file)
    bk.status = fields.BackupStatus.RESTORING
    bk.save()
    with open(a.restore, 'wb') as out:
        driver.restore(bk, bk.volume_id, out, volume_is_new=True)
    bk.status = fields.BackupStatus.AVAILABLE
    bk.save()
    print('restored', bk.id)
    sys.exit(0)

if a.volume_id:
    vol = objects.Volume.get_by_id(ctx, a.volume_id)
else:
    size_gb = max(1, -(-os.path.getsize(a.file) // 2**30))
    vol = objects.Volume(ctx, size=size_gb, status='backing-up', display_name='luksfs-test',
                         project_id=ctx.project_id, user_id=ctx.user_id,
                         encryption_key_id=a.key_id, availability_zone='nova')
    vol.create()
bk = objects.Backup(ctx, volume_id=vol.id, status=fields.BackupStatus.CREATING, size=vol.size,
                    display_name='incr' if a.parent else 'full',
                    display_description='written by scripts/cinder-backup.py',
                    project_id=ctx.project_id, user_id=ctx.user_id, parent_id=a.parent,
                    availability_zone='nova', encryption_key_id=a.key_id)
bk.create()
with open(a.file, 'rb') as f:
    driver.backup(bk, f)
bk.status = fields.BackupStatus.AVAILABLE
bk.save()
print('volume', vol.id)
print('backup', bk.id)
print('container', bk.container)
print('prefix', bk.service_metadata)
print('objects', bk.object_count)
