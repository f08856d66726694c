"""Generated protobuf packages for coldbridge (``coldbridge.v1``)."""
