"""The Hugging Face Hub, asked once: when it cannot be reached (no network, no route, DNS fails), the process goes
offline before its first Hub id is looked up, so a model or data id that is not in the local cache fails at once
in one line instead of retrying over tens of seconds; with HF_HUB_OFFLINE=1 nothing is asked at all."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_reachable: bool | None = None  # the answer, once asked


def hub_offline() -> bool:
    """True when Hub lookups must stay in the local cache: HF_HUB_OFFLINE is set, or the Hub endpoint did not
    answer a TCP connection within PROBE_TIMEOUT_S (asked once per process; then this process is put offline, as
    HF_HUB_OFFLINE=1 would, so huggingface_hub, transformers and datasets do not retry). Behind an HTTP(S) proxy
    the endpoint is not asked directly, and the Hub counts as reachable."""
    global _reachable
    import huggingface_hub.constants as hub

    if hub.HF_HUB_OFFLINE:
        return True
    if _reachable is None:
        _reachable = _answers(hub.ENDPOINT)
        if not _reachable:
            go_offline()
    return not _reachable


def _answers(endpoint: str) -> bool:
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")):
        return True
    url = urlparse(endpoint)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def go_offline() -> None:
    """Put this process (and the processes it starts) in the Hub's offline mode, as HF_HUB_OFFLINE=1 does."""
    import huggingface_hub.constants as hub

    os.environ["HF_HUB_OFFLINE"] = "1"
    hub.HF_HUB_OFFLINE = True
    try:
        import datasets.config

        datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    except ImportError:
        pass
