"""Put a backup record into the database of the cinder-api that scripts/cinder-api-up.sh runs, with
cinder's own DB API (`db.volume_create`, `db.backup_create`: the rows cinder's API and backup
manager would have written; its objects API cannot create a record of a given id), or take one out. Run it with the venv's python:

  $CINDER_VENV/bin/python cinder-api-record.py --config-file $CINDER_CONF backup \\
      --id BACKUP --project PROJECT --volume VOLUME [--key-id ID] [--user USER]
      a volume record VOLUME (unless there is one) and an `available` backup BACKUP of it in
      PROJECT whose encryption_key_id is ID (the key clone the backup manager makes); an earlier
      (or deleted) record of the same backup is brought back with these values
      (`db.backup_update`). Prints `backup ID`.
  ... --config-file $CINDER_CONF delete --id BACKUP
      deletes the backup record as cinder does (`db.backup_destroy`: GET
      /v3/{project}/backups/BACKUP then answers 404).
"""
import argparse

from oslo_config import cfg

ap = argparse.ArgumentParser()
ap.add_argument('--config-file', required=True)
sub = ap.add_subparsers(dest='cmd', required=True)
b = sub.add_parser('backup')
b.add_argument('--id', required=True)
b.add_argument('--project', required=True)
b.add_argument('--volume', required=True)
b.add_argument('--key-id')
b.add_argument('--user', default='luksfs-user')
d = sub.add_parser('delete')
d.add_argument('--id', required=True)
a = ap.parse_args()

from cinder import objects  # noqa: E402

objects.register_all()
from cinder.common import config  # noqa: E402,F401  (registers the options)
from cinder import context  # noqa: E402
from cinder.db import api as db  # noqa: E402
from cinder import exception  # noqa: E402
from cinder.objects import fields  # noqa: E402
from cinder.volume import volume_types  # noqa: E402

CONF = cfg.CONF
CONF([], project='cinder', default_config_files=[a.config_file])
admin = context.get_admin_context()
admin.read_deleted = 'yes'


def exists(get, id_):
    try:
        get(admin, id_)
        return True
    except (exception.BackupNotFound, exception.VolumeNotFound):
        return False


if a.cmd == 'delete':
    if exists(db.backup_get, a.id):
        db.backup_destroy(admin, a.id)
    print('deleted', a.id)
else:
    ctx = context.RequestContext(a.user, a.project, is_admin=True)
    if not exists(db.volume_get, a.volume):
        db.volume_create(ctx, dict(id=a.volume, size=1, status='available', display_name='luksfs-test',
                                   project_id=a.project, user_id=a.user, availability_zone='nova',
                                   volume_type_id=volume_types.get_default_volume_type(admin)['id']))
    values = dict(volume_id=a.volume, status=fields.BackupStatus.AVAILABLE, project_id=a.project,
                  user_id=a.user, encryption_key_id=a.key_id)
    if exists(db.backup_get, a.id):
        db.backup_update(admin, a.id, dict(values, deleted=False, deleted_at=None))
    else:
        db.backup_create(ctx, dict(values, id=a.id, size=1, display_name='luksfs-test', availability_zone='nova',
                                   display_description='written by cinder-api-record.py'))
    print('backup', a.id)
