"""Files and the console, the lowest layer: atomic writes and folder builds (`atomic`), where inputs and caches
live (`paths`), content fingerprints and checksums (`fingerprint`), `.npy` matrices a user hands us (`npy`),
and the Rich console every command prints through (`console`). Nothing here imports the rest of twotower."""
