"""The service layer: the run operations (``Service``), its settings and the process's one
service (``get_service``). Front ends import these names from here."""

from rayflow.service.operations import Service, get_service
from rayflow.service.settings import Settings

__all__ = ["Service", "Settings", "get_service"]
