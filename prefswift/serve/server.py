"""Running the app: who may listen where, uvicorn, and a clean exit on SIGTERM.

uvicorn serves the FastAPI app; on SIGTERM/SIGINT it stops accepting connections and waits for the requests in flight
(streams included) to finish; then the engine's scheduler is stopped and the process exits 0 (uvicorn re-raises the
signal it caught once it is done, so a no-op handler is installed first: the default one would kill the process).
"""
import os
import signal
from typing import Optional

from ..errors import ArgumentError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
API_KEY_ENV = "PREFSWIFT_API_KEY"


def effective_api_key(api_key: Optional[str]) -> Optional[str]:
    return api_key or os.environ.get(API_KEY_ENV) or None


def check_exposure(host: str, api_key: Optional[str], allow_unauthenticated: bool) -> None:
    """Listening beyond this machine needs a key, or the user's explicit word that none is wanted."""
    if host not in LOOPBACK and not api_key and not allow_unauthenticated:
        raise ArgumentError(f"--host {host}: listening beyond this machine needs --api_key KEY (or {API_KEY_ENV}); "
                            "to serve without one, add --allow_unauthenticated true")


def run_server(app, engine, host: str, port: int, log=print) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=None, lifespan="off")
    server = uvicorn.Server(config)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGTERM, signal.SIGINT)}
    engine.start()
    shown = "[" + host + "]" if ":" in host else host
    log(f"[prefswift] deploy: serving {', '.join(engine.models())} at http://{shown}:{port}/v1 "
        "(SIGTERM/Ctrl-C: finish what is in flight, then stop)")
    try:
        server.run()
    finally:
        engine.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if not server.started:
        raise ArgumentError(f"could not listen on {host}:{port} (in use, or not an address of this machine); pick "
                            "another --port or --host")
    log("[prefswift] deploy: stopped")


__all__ = ["run_server", "check_exposure", "effective_api_key", "LOOPBACK"]
