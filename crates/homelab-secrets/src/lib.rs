//! The SOPS (age) secrets file: encryption, decryption, generation, rotation and leak scanning.
