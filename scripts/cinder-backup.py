"""Write (or restore) Cinder backups with cinder's own chunked backup driver, without a Cinder
deployment: a real cinder sqlite database (`cinder-manage db sync`), real `objects.Volume` and
`objects.Backup` rows, and the driver class named by `backup_driver` in CONF. No API, scheduler,
volume or backup service runs; what the driver writes is what `cinder-backup` writes.

usage:
  cinder-backup.py CONF FILE [--volume-id VOL] [--parent BACKUP] [--key-id ID] [--compression C]
      back FILE up; prints `volume ID`, `backup ID`, `container C`, `prefix P`, `objects N`
  cinder-backup.py CONF BACKUP --restore OUT          cinder's own restore of BACKUP into OUT
  cinder-backup.py CONF - --jobs JOBS.tsv             many backups in one process (cinder takes
      seconds to import): JOBS lines `label compression file parent-label|- key-id|-`; a
      parent label names an earlier job (an incremental of its volume). Prints `label volume
      backup` per job.
The compression (zlib, bz2, zstd, none) overrides `backup_compression_algorithm` before each
driver is made: the driver reads it when it is constructed and for each chunk.
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
ap.add_argument('--compression')
ap.add_argument('--restore', metavar='OUT')
ap.add_argument('--jobs', metavar='TSV')
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
import cinder.backup.chunkeddriver  # noqa: E402,F401  (registers the compression option)
from oslo_log import log as logging  # noqa: E402
from oslo_utils import importutils  # noqa: E402

logging.setup(CONF, 'cinder')
ctx = context.get_admin_context()
ctx.project_id, ctx.user_id = 'luksfs-project', 'luksfs-user'


def driver(compression=None):
    if compression:
        CONF.set_override('backup_compression_algorithm', compression)
    return importutils.import_class(CONF.backup_driver)(ctx)


def backup(path, compression=None, volume_id=None, parent=None, key_id=None):
    if volume_id:
        vol = objects.Volume.get_by_id(ctx, volume_id)
    else:
        size_gb = max(1, -(-os.path.getsize(path) // 2**30))
        vol = objects.Volume(ctx, size=size_gb, status='backing-up', display_name='luksfs-test',
                             project_id=ctx.project_id, user_id=ctx.user_id,
                             encryption_key_id=key_id, availability_zone='nova')
        vol.create()
    bk = objects.Backup(ctx, volume_id=vol.id, status=fields.BackupStatus.CREATING,
                        size=vol.size, display_name='incr' if parent else 'full',
                        display_description='written by scripts/cinder-backup.py',
                        project_id=ctx.project_id, user_id=ctx.user_id, parent_id=parent,
                        availability_zone='nova', encryption_key_id=key_id)
    bk.create()
    with open(path, 'rb') as f:
        driver(compression).backup(bk, f)
    bk.status = fields.BackupStatus.AVAILABLE
    bk.save()
    return vol, bk


if a.restore:
    bk = objects.Backup.get_by_id(ctx, a.file)
    bk.status = fields.BackupStatus.RESTORING
    bk.save()
    with open(a.restore, 'wb') as out:
        driver(a.compression).restore(bk, bk.volume_id, out, volume_is_new=True)
    bk.status = fields.BackupStatus.AVAILABLE
    bk.save()
    print('restored', bk.id)
elif a.jobs:
    done = {}
    for line in open(a.jobs):
        if not line.strip():
            continue
        label, comp, path, parent, key_id = line.rstrip('\n').split('\t')
        key_id = None if key_id == '-' else key_id
        if parent == '-':
            vol, bk = backup(path, comp, key_id=key_id)
        else:
            pvol, pbk = done[parent]
            vol, bk = backup(path, comp, volume_id=pvol, parent=pbk, key_id=key_id)
        done[label] = (vol.id, bk.id)
        print(label, vol.id, bk.id, flush=True)
else:
    vol, bk = backup(a.file, a.compression, a.volume_id, a.parent, a.key_id)
    print('volume', vol.id)
    print('backup', bk.id)
    print('container', bk.container)
    print('prefix', bk.service_metadata)
    print('objects', bk.object_count)
