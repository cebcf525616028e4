"""The WSDLs and schemas a gateway publishes (package data under `xca/wsdl/`).

Each WSDL carries a placeholder address that the serving gateway replaces with its own
(`public_base_url`), so a client such as zeep reads where to send its requests. Shared by the
regions' responding gateway (ITI-38/39) and the hub's registry (ITI-18/43).
"""

from __future__ import annotations

from importlib import resources

__all__ = ["SCHEMA_FILES", "package_file", "wsdl_for"]

SCHEMA_FILES = frozenset({"rim.xsd", "rs.xsd", "query.xsd", "XDS.b_DocumentRepository.xsd"})
"""The schemas the WSDLs import, served beside them under their own names."""

_ADDRESS_PLACEHOLDER = b"http://127.0.0.1/REPLACED-BY-THE-GATEWAY"


def package_file(name: str) -> bytes:
    """A file of `xca/wsdl/` as shipped."""
    return resources.files("onerecord.xca").joinpath("wsdl", name).read_bytes()


def wsdl_for(file: str, address: str) -> bytes:
    """The WSDL `file` with the serving endpoint's `address` in place of the placeholder."""
    return package_file(file).replace(_ADDRESS_PLACEHOLDER, address.encode())
