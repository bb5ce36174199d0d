"""Adapters: persistence configuration, root key, keyring, ciphertext format, transcoding."""
