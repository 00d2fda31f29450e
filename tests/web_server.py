"""`prefswift web`'s app (create_app over a WebState) served by uvicorn in a thread on 127.0.0.1, for the web tests."""
import socket
import threading
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """The app on `port` (a free one by default); stop() ends it. A restart is stop() and a new Served over a new
    WebState on the same port: nothing of the old server's memory is left."""

    def __init__(self, state, port: int = 0):
        import uvicorn

        from prefswift.web.app import create_app

        self.state, self.port = state, port or free_port()
        config = uvicorn.Config(create_app(state), host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started and time.time() < deadline:
            time.sleep(0.05)
        assert self.server.started, "the web app did not start within 20 s"
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        self.state.models.shutdown()
