"""The toy device registry, as the emulator serves it: Device/{id} (the NHS shape is FHIR
already), an NHS-style 404 for unknown ids, and a retired device NHS-style (404 with a
Spine code the toy source says means "gone")."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

DEVICES = {
    "dev-1": {
        "resourceType": "Device",
        "id": "dev-1",
        "status": "active",
        "deviceName": [{"name": "Infusion pump", "type": "user-friendly-name"}],
    }
}


def _outcome(code: str) -> dict[str, object]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-found",
                "details": {
                    "coding": [
                        {
                            "system": "https://fhir.nhs.uk/R4/CodeSystem/Spine-ErrorOrWarningCode",
                            "code": code,
                            "display": code.replace("_", " ").lower(),
                        }
                    ]
                },
            }
        ],
    }


async def device(request: Request) -> JSONResponse:
    device_id = request.path_params["id"]
    if device_id == "dev-retired":
        return JSONResponse(_outcome("DEVICE_RETIRED"), status_code=404)
    if device_id not in DEVICES:
        return JSONResponse(_outcome("RESOURCE_NOT_FOUND"), status_code=404)
    return JSONResponse(DEVICES[device_id])


ROUTES = [Route("/Device/{id}", device, methods=["GET"])]
