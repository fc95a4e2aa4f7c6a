"""Process launch: the embedded Redis server, worker and beat."""
