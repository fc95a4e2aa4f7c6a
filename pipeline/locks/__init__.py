"""Resource locks: the interface (``base``) and its Redis implementation."""
