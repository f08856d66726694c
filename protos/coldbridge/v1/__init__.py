"""Generated code for the ``coldbridge.v1`` proto package (see ``recommender.proto``)."""
