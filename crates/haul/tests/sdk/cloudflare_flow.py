"""The Stream flow a user of the official Python SDK (cloudflare 5.9.0) runs, against haul's Cloudflare API, with
strict response validation on.

Run by crates/haul/tests/sdk.rs with: BASE TOKEN ACCOUNT OTHER_TOKEN OTHER_ACCOUNT VIDEO_URL VIDEO_SHA256
FAILING_URL.
"""

import hashlib
import sys
import time

import cloudflare
import requests
from cloudflare import Cloudflare

base, token, account, other_token, other_account, video_url, video_sha256, failing_url = sys.argv[1:9]
cf = Cloudflare(api_token=token, base_url=f"{base}/client/v4", _strict_response_validation=True, max_retries=0)


def wait_ready(uid):
    for _ in range(600):
        video = cf.stream.get(identifier=uid, account_id=account)
        if video.ready_to_stream or video.status.state == "error":
            return video
        time.sleep(0.1)
    raise AssertionError(f"video {uid} never became ready")


# Copy from a URL given as `input`, the field the SDK documents first, with meta, a creator and a thumbnail spot.
video = cf.stream.copy.create(
    account_id=account, input=video_url, meta={"name": "Clip", "team": "a"}, creator="creator-1",
    thumbnail_timestamp_pct=0.5,
)
assert video.uid and len(video.uid) == 32, video.uid
assert video.meta["name"] == "Clip" and video.meta["team"] == "a", video.meta
assert video.meta["downloaded-from"] == video_url, video.meta
assert video.creator == "creator-1", video.creator
assert video.thumbnail_timestamp_pct == 0.5, video.thumbnail_timestamp_pct
assert video.require_signed_urls is False, video.require_signed_urls
video = wait_ready(video.uid)
assert video.ready_to_stream and video.status.state == "ready", video.status
assert video.duration and video.duration > 0, video.duration
assert video.input.width > 0 and video.input.height > 0, video.input
assert video.size and video.size > 0, video.size
assert video.thumbnail, "a copied video has a thumbnail"
thumbnail = requests.get(video.thumbnail, timeout=30)
assert thumbnail.status_code == 200 and thumbnail.headers["content-type"].startswith("image/"), thumbnail.headers

# Another spot for the thumbnail: the frame is taken again there.
cf.stream.edit(identifier=video.uid, account_id=account, thumbnail_timestamp_pct=0.0)
for _ in range(100):
    again = requests.get(cf.stream.get(identifier=video.uid, account_id=account).thumbnail, timeout=30)
    if again.status_code == 200 and again.content != thumbnail.content:
        break
    time.sleep(0.1)
else:
    raise AssertionError("the thumbnail was not taken again at its new spot")

# Downloads: the default one, then the audio one (no SDK method; the raw call the docs show).
created = cf.stream.downloads.create(identifier=video.uid, account_id=account)
assert created.default is not None, created
for _ in range(600):
    downloads = cf.stream.downloads.get(identifier=video.uid, account_id=account)
    if downloads.default.status == "ready":
        break
    time.sleep(0.1)
response = requests.get(downloads.default.url, timeout=30)
assert response.status_code == 200
assert hashlib.sha256(response.content).hexdigest() == video_sha256
assert response.headers["content-type"] == "video/mp4", response.headers["content-type"]

cf.post(f"/accounts/{account}/stream/{video.uid}/downloads/audio", cast_to=object)
for _ in range(600):
    audio = cf.get(f"/accounts/{account}/stream/{video.uid}/downloads", cast_to=object)["result"]["audio"]
    if audio["status"] != "inprogress":
        break
    time.sleep(0.1)
assert audio["status"] == "ready", audio
response = requests.get(audio["url"], timeout=30)
assert response.status_code == 200
assert response.headers["content-type"] == "audio/mp4", response.headers["content-type"]
assert ".m4a" in response.headers["content-disposition"], response.headers["content-disposition"]

# Edits: meta is replaced whole, the name follows meta.name, signed URLs make links short-lived.
edited = cf.stream.edit(
    identifier=video.uid, account_id=account, meta={"name": "Renamed", "team": "b"}, require_signed_urls=True,
)
assert edited.meta["name"] == "Renamed" and edited.meta["team"] == "b", edited.meta
assert edited.require_signed_urls is True and edited.creator == "creator-1", edited
assert cf.stream.get(identifier=video.uid, account_id=account).meta["name"] == "Renamed"
signed = cf.get(f"/accounts/{account}/stream/{video.uid}/downloads", cast_to=object)["result"]["default"]["url"]
expires = int(signed.split("expires=")[1].split("&")[0])
assert expires - time.time() < 3700, f"a link of a video that requires signed URLs lives an hour: {signed}"

# A second video by another creator, for the filters.
second = cf.stream.copy.create(account_id=account, url=video_url, meta={"name": "Second"}, creator="creator-2")
wait_ready(second.uid)

# The list, filtered as Cloudflare filters it.
uids = lambda **filters: [item.uid for item in cf.stream.list(account_id=account, **filters)]
assert uids() == [second.uid, video.uid], uids()
assert uids(asc=True) == [video.uid, second.uid]
assert uids(creator="creator-1") == [video.uid]
assert uids(creator="someone-else") == []
assert uids(status="ready") == [second.uid, video.uid]
assert uids(status="error") == []
assert uids(search="renamed") == [video.uid]
assert uids(video_name="Second") == [second.uid]
assert uids(limit=1) == [second.uid]
assert uids(after="2000-01-01T00:00:00+00:00") == [second.uid, video.uid]
assert uids(before="2000-01-01T00:00:00Z") == []
counted = cf.get(f"/accounts/{account}/stream", options={"params": {"include_counts": "true", "limit": 1}}, cast_to=object)
assert (counted["total"], counted["range"]) == (2, 1), counted
try:
    cf.stream.list(account_id=account, status="finished")
    raise AssertionError("an unknown status was accepted")
except cloudflare.BadRequestError:
    pass

usage = cf.stream.videos.storage_usage(account_id=account)
assert usage.video_count == 2 and usage.total_storage_minutes > 0, usage
assert cf.stream.videos.storage_usage(account_id=account, creator="creator-2").video_count == 1
cf.stream.delete(identifier=second.uid, account_id=account)

# A video that fails: its downloads end in error instead of waiting for ever.
broken = cf.stream.copy.create(account_id=account, url=failing_url)
broken = wait_ready(broken.uid)
assert broken.status.state == "error", broken.status
cf.post(f"/accounts/{account}/stream/{broken.uid}/downloads/audio", cast_to=object)
audio = cf.get(f"/accounts/{account}/stream/{broken.uid}/downloads", cast_to=object)["result"]["audio"]
assert audio["status"] == "error", audio

# Errors with the SDK's own exception classes.
try:
    Cloudflare(api_token="wrong", base_url=f"{base}/client/v4", max_retries=0).stream.get(identifier=video.uid, account_id=account)
    raise AssertionError("a wrong token was accepted")
except cloudflare.AuthenticationError:
    pass
for unknown in ["0" * 32, "not-a-video-id"]:
    try:
        cf.stream.get(identifier=unknown, account_id=account)
        raise AssertionError(f"{unknown} was found")
    except cloudflare.NotFoundError:
        pass
other = Cloudflare(api_token=other_token, base_url=f"{base}/client/v4", max_retries=0)
try:
    other.stream.get(identifier=video.uid, account_id=other_account)
    raise AssertionError("another account's video was found")
except cloudflare.NotFoundError:
    pass
try:
    other.stream.get(identifier=video.uid, account_id=account)
    raise AssertionError("another account's path was served")
except cloudflare.PermissionDeniedError:
    pass

# Deleting the downloads makes their links stop working; deleting the video removes it.
default_link = downloads.default.url
assert cf.stream.downloads.delete(identifier=video.uid, account_id=account) == "ok"
assert requests.get(default_link, timeout=30).status_code == 404
cf.stream.delete(identifier=video.uid, account_id=account)
try:
    cf.stream.get(identifier=video.uid, account_id=account)
    raise AssertionError("a deleted video was found")
except cloudflare.NotFoundError:
    pass
print("cloudflare flow: ok")
