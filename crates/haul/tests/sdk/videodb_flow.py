"""The VideoDB flow a user of the official Python SDK (videodb 0.5.1) runs, against haul's VideoDB API.

Run by crates/haul/tests/sdk.rs with: BASE KEY OTHER_KEY URL SHA256 FAILING_URL. Exits non-zero (with the
assertion) on the first thing that does not behave as the SDK expects.
"""

import hashlib
import sys

import requests
import videodb
from videodb.exceptions import AuthenticationError, InvalidRequestError

base, key, other_key, url, sha256, failing_url = sys.argv[1:7]
api = f"{base}/videodb"
conn = videodb.connect(api_key=key, base_url=api)

# conn.download(): POST /download, then the SDK polls data.output_url until the job is done.
done = conn.download(url, "My clip")
assert done["status"] == "done", done
assert done["name"] == "My clip", done
response = requests.get(done["download_url"], timeout=30)
assert response.status_code == 200, response.status_code
assert hashlib.sha256(response.content).hexdigest() == sha256, "the bytes differ from the origin's"
assert "My clip" in response.headers["content-disposition"], response.headers["content-disposition"]

# conn.get("download/{id}") with the SDK's default wait=True, on a finished job and on one still processing.
job = conn.get(f"download/{done['id']}")
assert job["status"] == "done" and job["id"] == done["id"], job
listed = conn.get("download")
assert [entry["id"] for entry in listed["downloads"]] == [done["id"]], listed

# A download that fails: the SDK raises, with haul's reason.
try:
    conn.download(failing_url, "Broken")
    raise AssertionError("a failing download was reported as done")
except InvalidRequestError as error:
    assert "404" in str(error), str(error)

# Errors with the SDK's own exception classes: a wrong key, an unknown id, another account's id.
try:
    videodb.connect(api_key="sk-not-a-key", base_url=api).get("download")
    raise AssertionError("a wrong key was accepted")
except AuthenticationError:
    pass
for unknown in ["00000000-0000-4000-8000-000000000000", done["id"]]:
    caller = conn if unknown != done["id"] else videodb.connect(api_key=other_key, base_url=api)
    try:
        caller.get(f"download/{unknown}")
        raise AssertionError(f"download/{unknown} was found")
    except InvalidRequestError as error:
        assert "not found" in str(error), str(error)

# Delete, as the documentation shows it (a JSON body), then the job is gone.
conn.delete("download", json={"download_id": done["id"]})
assert [entry for entry in conn.get("download")["downloads"] if entry["id"] == done["id"]] == []
print("videodb flow: ok")
