"""The gateway's settings are fields of the one settings model, ``flows.settings.Settings``
(its gateway section: auth, the registry, the dispatcher's pace, limits). These names stay
for the modules that import them; new code uses ``flows.settings`` directly."""

from __future__ import annotations

from flows.settings import Settings, get_settings

GatewaySettings = Settings
"""The one settings model (an alias)."""

get_gateway_settings = get_settings
"""``get_settings`` itself: one cache, so ``cache_clear()`` on either clears both."""

__all__ = ["GatewaySettings", "get_gateway_settings"]
