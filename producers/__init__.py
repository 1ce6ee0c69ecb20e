"""kakao-dispatch producers: the ways jobs get in (the Python `Producer`, and the command line)."""

from producers.producer import Enqueued, Producer, RequestRejected

__all__ = ["Enqueued", "Producer", "RequestRejected"]
