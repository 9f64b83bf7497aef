"""localcloud, the embedded default: the instance request and the secret reader. The
local hospital targets take the shared hospital models (``flows.clouds.hospital``) as
they are."""

from flows.clouds.local.request import LocalConfig, LocalInputs
from flows.clouds.local.secrets import read_local_secret

__all__ = ["LocalConfig", "LocalInputs", "read_local_secret"]
