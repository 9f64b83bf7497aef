"""Every localcloud resource type; adding one is adding it to ``RESOURCES``."""

from tf import iface

from infrastructure.localcloud.resources.instance import Instance

RESOURCES: tuple[type[iface.Resource], ...] = (Instance,)
