"""The code several bundled scripts share, one module per block; tools/sync_shared.py copies each into the scripts
that carry its markers. Tests import it as a package (`from shared import data`)."""
