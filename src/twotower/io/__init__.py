"""Files and the console, the lowest layer: atomic writes and folder builds (`atomic`), where inputs and caches
live (`paths`), whole-file input fingerprints taken while reading (`fingerprint`), checksums of what we write
and read back (`checksum`), the one inter-process write lock (`lock`), `.npy` matrices a user hands us (`npy`),
and the Rich console every command prints through (`console`). Nothing here imports the rest of twotower."""
