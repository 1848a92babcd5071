"""WHIP and WHEP over HTTP against a running bidhall: an aiortc publisher and viewer talk to
the server only through the endpoints, and every refusal has its status and code."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from clients.python import StaffClient
from server.config import Settings
from tests.conftest import Running, lot_fields, start_server, stop_server
from tests.streaming.peers import NumberedVideo, prefer

pytestmark = pytest.mark.timeout(90)
SDP = {"content-type": "application/sdp"}
LOT = "/api/streams/lot/V-1"


async def offer(sending: bool) -> RTCPeerConnection:
    pc = RTCPeerConnection()
    if sending:
        prefer(pc.addTransceiver(NumberedVideo(), direction="sendonly"), "video/H264")
    else:
        prefer(pc.addTransceiver("video", direction="recvonly"), "video/H264")
    await pc.setLocalDescription(await pc.createOffer())
    return pc


def code(r: httpx.Response) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


async def test_publish_and_watch_over_whip_and_whep(server: Running, staff: StaffClient) -> None:
    await staff.create_lot(**lot_fields(lot_id="V-1"))
    grant = await staff.call("POST", LOT + "/token", {})
    assert grant["whip_url"] == LOT + "/whip"
    auth = {"authorization": f"Bearer {grant['token']}"}
    pcs: list[RTCPeerConnection] = []
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        pub = await offer(sending=True)
        pcs.append(pub)
        r = await http.post(LOT + "/whip", content=pub.localDescription.sdp,
                            headers={**SDP, **auth})
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith("application/sdp")
        assert r.headers["location"].startswith(LOT + "/whip/")
        assert r.headers["access-control-allow-origin"] == "*"
        await pub.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
        whip_resource = r.headers["location"]

        assert (await http.get(LOT)).json()["live"] is True
        watcher = await offer(sending=False)
        pcs.append(watcher)
        frames: list[Any] = []
        readers: list[asyncio.Task[None]] = []

        @watcher.on("track")
        def on_track(track: Any) -> None:
            async def read() -> None:
                while True:
                    frames.append(await track.recv())

            readers.append(asyncio.ensure_future(read()))

        r = await http.post(LOT + "/whep", content=watcher.localDescription.sdp, headers=SDP)
        assert r.status_code == 201, r.text
        await watcher.setRemoteDescription(RTCSessionDescription(r.text, "answer"))
        whep_resource = r.headers["location"]
        for _ in range(200):
            if len(frames) >= 20:
                break
            await asyncio.sleep(0.05)
        assert len(frames) >= 20
        assert (await http.get(LOT)).json()["viewers"] == 1

        # Trickle: a candidate is taken (204); an ICE restart is refused (422).
        frag = ("a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdef0123456789\r\na=mid:0\r\n"
                "a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n")
        patch = {"content-type": "application/trickle-ice-sdpfrag"}
        r = await http.patch(whep_resource, content=frag, headers=patch)
        assert r.status_code == 204, r.text
        r = await http.patch(whep_resource, content=frag, headers={**patch, "if-match": "*"})
        assert code(r) == (422, "ice_restart_unsupported")
        r = await http.patch(whep_resource, content=frag, headers={**patch, "if-match": '"x"'})
        assert code(r) == (412, "precondition_failed")
        r = await http.patch(whep_resource, content="hello", headers=patch)
        assert code(r) == (400, "bad_sdpfrag")

        # Only the token's holder may end the publisher's resource.
        assert code(await http.delete(whip_resource)) == (401, "unauthorized")
        assert (await http.head(whep_resource)).status_code == 200
        assert (await http.delete(whep_resource)).status_code == 200
        assert (await http.head(whep_resource)).status_code == 404
        assert (await http.delete(whip_resource, headers=auth)).status_code == 200
        assert (await http.get(LOT)).json() == {"session": "lot:V-1", "live": False,
                                                "viewers": 0, "recording": False,
                                                "external": False, "whep_url": LOT + "/whep"}
    for task in readers:
        task.cancel()
    for pc in pcs:
        await pc.close()


async def test_refusals(server: Running, staff: StaffClient) -> None:
    await staff.create_lot(**lot_fields(lot_id="V-1"))
    await staff.create_lot(**lot_fields(lot_id="V-2"))
    token = (await staff.call("POST", LOT + "/token", {}))["token"]
    other = (await staff.call("POST", "/api/streams/lot/V-2/token", {}))["token"]
    pub = await offer(sending=True)
    sdp = pub.localDescription.sdp
    auth = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        r = await http.options(LOT + "/whip")
        assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
        assert "Authorization" in r.headers["access-control-allow-headers"]
        assert (await http.get(LOT + "/whip")).status_code == 405
        cases = [
            ({"content-type": "text/plain", **auth}, sdp, (415, "unsupported_media_type")),
            ({**SDP, **auth}, "v=0\r\nnot sdp at all\r\n", (400, "bad_sdp")),
            ({**SDP, **auth}, "", (400, "bad_sdp")),
            (SDP, sdp, (401, "unauthorized")),
            ({**SDP, "authorization": "Bearer bh1.forged.token"}, sdp, (401, "bad_token")),
            ({**SDP, "authorization": f"Bearer {other}"}, sdp, (403, "forbidden")),
        ]
        for headers, body, expected in cases:
            assert code(await http.post(LOT + "/whip", content=body, headers=headers)) == \
                expected, (headers, body[:20])
        r = await http.post("/api/streams/lot/NOPE/whip", content=sdp, headers={**SDP, **auth})
        assert code(r) == (404, "unknown_session")
        r = await http.post("/api/streams/auction/V-1/whep", content=sdp, headers=SDP)
        assert code(r) == (404, "unknown_session")
        r = await http.post(LOT + "/whep", content=sdp, headers=SDP)  # a sendonly offer
        assert code(r) == (400, "bad_sdp")
        assert code(await http.post(LOT + "/token", json={})) == (401, "unauthorized")

        r = await http.post(LOT + "/whip", content=sdp, headers={**SDP, **auth})
        assert r.status_code == 201, r.text
        second = await offer(sending=True)
        r = await http.post(LOT + "/whip", content=second.localDescription.sdp,
                            headers={**SDP, **auth})
        assert code(r) == (409, "already_publishing")
        r = await http.delete(LOT + "/whip/unknown", headers=auth)
        assert code(r) == (404, "unknown_resource")
        await second.close()
    await pub.close()


async def test_a_full_relay_sends_viewers_away(settings: Settings, tmp_path: Any) -> None:
    full = await start_server(replace(settings, max_viewers=0))
    moved = await start_server(replace(settings, data_dir=tmp_path / "b", max_viewers=0,
                                       relay_peers=("http://relay-2.example:8000",)))
    sfu = await start_server(replace(settings, data_dir=tmp_path / "c", stream_redirect=(
        "https://sfu.example/{kind}/{id}/{protocol}")))
    viewer = await offer(sending=False)
    try:
        for s in (full, moved, sfu):
            async with s.staff() as staff:
                await staff.create_lot(**lot_fields(lot_id="V-1"))
        body = viewer.localDescription.sdp
        async with httpx.AsyncClient() as http:
            r = await http.post(full.base_url + LOT + "/whep", content=body, headers=SDP)
            assert code(r) == (503, "relay_full") and r.headers["retry-after"] == "5"
            r = await http.post(moved.base_url + LOT + "/whep", content=body, headers=SDP)
            assert r.status_code == 307
            assert r.headers["location"] == "http://relay-2.example:8000" + LOT + "/whep"
            for protocol in ("whip", "whep"):
                r = await http.post(f"{sfu.base_url}{LOT}/{protocol}", content=body,
                                    headers=SDP)
                assert r.status_code == 307
                assert r.headers["location"] == f"https://sfu.example/lot/V-1/{protocol}"
            state = (await http.get(sfu.base_url + LOT)).json()
            assert state["external"] is True and state["live"] is None
            assert state["whep_url"] == "https://sfu.example/lot/V-1/whep"
            state = (await http.get(full.base_url + LOT)).json()
            assert state["external"] is False and state["live"] is False
    finally:
        await viewer.close()
        for s in (full, moved, sfu):
            await stop_server(s)


async def test_recording_is_started_and_stopped_by_staff(server: Running,
                                                         staff: StaffClient) -> None:
    await staff.create_lot(**lot_fields(lot_id="V-1"))
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        assert code(await http.post(LOT + "/recording")) == (401, "unauthorized")
    started = await staff.call("POST", LOT + "/recording")
    assert started["recording"] is True and started["file"].endswith(".ts")
    assert (await staff.call("GET", LOT))["recording"] is True
    from clients.python.staff import ApiError

    with pytest.raises(ApiError) as twice:
        await staff.call("POST", LOT + "/recording")
    assert (twice.value.status, twice.value.code) == (409, "already_recording")
    stopped = await staff.call("DELETE", LOT + "/recording")
    assert stopped["file"] == started["file"] and stopped["frames"] == 0  # nobody published
    with pytest.raises(ApiError) as idle:
        await staff.call("DELETE", LOT + "/recording")
    assert (idle.value.status, idle.value.code) == (409, "not_recording")
