"""picamera2.allocators: the DMA heap allocator, which can be refused access to /dev/dma_heap.

allocators/dmaallocator.py makes a DmaHeap (dma_heap.py), which opens /dev/dma_heap/vidbuf_cached
or /dev/dma_heap/linux,cma; only FileNotFoundError is caught, so a PermissionError (the user is not
in group `video`, or the systemd unit's DeviceAllow= lacks char-dma_heap) escapes.
"""

from __future__ import annotations


class DmaAllocator:
    """Fake allocator: raises `Picamera2.dma_heap_error` when it opens the heap."""

    def __init__(self) -> None:
        import picamera2  # the package as imported now (tests re-import it)

        err = picamera2.Picamera2.dma_heap_error
        if err is not None:
            raise err
