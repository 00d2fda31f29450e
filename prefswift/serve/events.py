"""Server-sent event responses that always run their clean-up when the response ends, however it ends.

A client that leaves cancels the task sending the response while the body generator may be parked at a `yield`; that
generator's own `finally` then runs only when it is garbage-collected (seconds later, or not at all while a reference
cycle holds it), and the rows it generates for stay in the batch. `event_stream(body, on_close)` calls `on_close` as
soon as the response is over: all sent, or the client gone.
"""
from typing import AsyncIterator, Callable, Dict, Optional


def event_stream(body: AsyncIterator[str], on_close: Callable[[], None], headers: Optional[Dict[str, str]] = None):
    from starlette.responses import StreamingResponse

    class EventStream(StreamingResponse):
        async def __call__(self, scope, receive, send):
            try:
                await super().__call__(scope, receive, send)
            finally:
                on_close()

    return EventStream(body, media_type="text/event-stream", headers=headers)
