"""The Ray adapter. Importing it makes the cluster's keyring the signing key's source in
this process (``keyring.install``: nothing is asked until something is signed)."""

from rayflow.execute.ray import keyring as _keyring

_keyring.install()
