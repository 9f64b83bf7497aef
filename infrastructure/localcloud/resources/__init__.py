"""Every localcloud resource type; adding one is adding it to ``RESOURCES``."""

from tf import iface

from infrastructure.localcloud.resources.bucket import Bucket
from infrastructure.localcloud.resources.instance import Instance
from infrastructure.localcloud.resources.network import Network
from infrastructure.localcloud.resources.password import Password
from infrastructure.localcloud.resources.secret import Secret
from infrastructure.localcloud.resources.sql import SqlDatabase, SqlInstance, SqlUser

RESOURCES: tuple[type[iface.Resource], ...] = (
    Instance,
    Network,
    SqlInstance,
    SqlDatabase,
    SqlUser,
    Bucket,
    Secret,
    Password,
)
