"""A hub user seen from outside, over HTTP only: log in, spawn, run code in a kernel, use nbgrader.

The end-to-end test and the load test drive the class through this, as a browser would: the login
form (PAM checks the password), the hub's REST API with the user's own token, the Jupyter Server
API of the user's server through the proxy (a websocket for the kernel), and nbgrader's assignment
list and formgrader handlers.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import requests
import websocket

from course_lib.errors import CourseError
from course_lib.hub.settings import COURSE_ID
from course_lib.paths import KERNEL_NAME


class HubUser:
    def __init__(self, base_url: str, name: str, timeout: float = 60):
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.session = requests.Session()
        self.token = ""

    # ----- the hub ---------------------------------------------------------------------------------

    def login(self, password: str) -> None:
        """The login form, as a browser submits it (with its _xsrf cookie); then an API token."""
        form = self.session.get(f"{self.base_url}/hub/login", timeout=self.timeout)
        form.raise_for_status()
        xsrf = self.session.cookies.get("_xsrf", "")
        answer = self.session.post(
            f"{self.base_url}/hub/login",
            data={"username": self.name, "password": password, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=self.timeout,
        )
        if answer.status_code != 302:
            raise CourseError(f"{self.name} could not log in: HTTP {answer.status_code}")
        created = self.session.post(
            f"{self.base_url}/hub/api/users/{self.name}/tokens",
            json={"note": "course client", "expires_in": 3600},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf", xsrf) or ""},
            timeout=self.timeout,
        )
        if created.status_code != 201:
            raise CourseError(f"{self.name} got no API token: HTTP {created.status_code} {created.text[:200]}")
        self.token = created.json()["token"]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def hub_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.base_url}/hub/api{path}", headers=self.headers, timeout=self.timeout, **kwargs
        )

    def spawn(self, timeout: float = 180) -> float:
        """Start this user's server through the REST API; seconds until the hub reports it ready."""
        started = time.monotonic()
        answer = self.hub_api("POST", f"/users/{self.name}/server")
        if answer.status_code not in (201, 202, 400):  # 400: already running
            raise CourseError(f"spawn of {self.name}: HTTP {answer.status_code} {answer.text[:200]}")
        while time.monotonic() - started < timeout:
            server = self.hub_api("GET", f"/users/{self.name}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                return time.monotonic() - started
            if server is None and answer.status_code != 400 and time.monotonic() - started > 5:
                raise CourseError(f"{self.name}'s server stopped while starting (see the hub's log)")
            time.sleep(0.25)
        raise CourseError(f"{self.name}'s server was not ready within {timeout} s")

    def stop_server(self) -> None:
        self.hub_api("DELETE", f"/users/{self.name}/server")

    # ----- the user's server -------------------------------------------------------------------------

    def server_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method, f"{self.base_url}/user/{self.name}{path}", headers=self.headers, timeout=self.timeout, **kwargs
        )

    def run_code(self, code: str, kernel: str = KERNEL_NAME, timeout: float = 120) -> str:
        """Start a kernel, run `code` over the kernel websocket, shut the kernel down; its text output.

        Raises CourseError with the traceback when the code fails.
        """
        started = self.server_api("POST", "/api/kernels", json={"name": kernel})
        if started.status_code != 201:
            raise CourseError(f"{self.name}: no kernel {kernel}: HTTP {started.status_code} {started.text[:200]}")
        kernel_id = started.json()["id"]
        try:
            return self._execute(kernel_id, code, timeout)
        finally:
            self.server_api("DELETE", f"/api/kernels/{kernel_id}")

    def _execute(self, kernel_id: str, code: str, timeout: float) -> str:
        url = f"{self.base_url.replace('http', 'ws', 1)}/user/{self.name}/api/kernels/{kernel_id}/channels"
        socket = websocket.create_connection(url, header=[f"Authorization: token {self.token}"], timeout=timeout)
        deadline = time.monotonic() + timeout
        session = uuid.uuid4().hex
        try:
            # As JupyterLab does: kernel_info until the kernel answers (a request sent while a loaded machine
            # still starts the kernel can be lost), then the code.
            while True:
                info_id = self._send(socket, session, "kernel_info_request", {})
                if self._reply(socket, info_id, min(10.0, deadline - time.monotonic()), []) is not None:
                    break
                if time.monotonic() >= deadline:
                    raise CourseError(f"{self.name}'s kernel did not answer within {timeout} s")
            output: list[str] = []
            msg_id = self._send(socket, session, "execute_request", {"code": code, "silent": False})
            if self._reply(socket, msg_id, deadline - time.monotonic(), output) is None:
                raise CourseError(f"{self.name}'s cell did not finish within {timeout} s")
            return "".join(output)
        finally:
            socket.close()

    def _send(self, socket: websocket.WebSocket, session: str, kind: str, content: dict) -> str:
        msg_id = uuid.uuid4().hex
        header = {"msg_id": msg_id, "username": self.name, "session": session, "msg_type": kind, "version": "5.3"}
        message = {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell"}
        socket.send(json.dumps(message))
        return msg_id

    def _reply(self, socket: websocket.WebSocket, msg_id: str, seconds: float, output: list[str]) -> dict | None:
        """The shell reply to `msg_id` once the kernel is idle again (so every output of it, which comes on
        another channel and may arrive after the reply, is in `output`); None after `seconds`."""
        deadline = time.monotonic() + max(0.1, seconds)
        reply, idle = None, False
        while (left := deadline - time.monotonic()) > 0:
            socket.settimeout(left)
            try:
                message = json.loads(socket.recv())
            except websocket.WebSocketTimeoutException:
                return None
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                output.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                output.append(content["data"].get("text/plain", "") + "\n")
            elif kind == "error":
                raise CourseError(f"{self.name}'s cell failed: {content['ename']}: {content['evalue']}")
            elif kind == "status":
                idle = idle or content.get("execution_state") == "idle"
            elif kind.endswith("_reply"):
                reply = content
            if reply is not None and idle:
                return reply
        return None

    def nbgrader(self, action: str, assignment: str) -> Any:
        """fetch, submit or fetch_feedback through nbgrader's assignment list, in the user's own server."""
        answer = self.server_api(
            "POST", f"/assignments/{action}", data={"course_id": COURSE_ID, "assignment_id": assignment}
        )
        try:
            result = answer.json()
        except ValueError:
            result = {}
        if answer.status_code != 200 or not result.get("success"):
            raise CourseError(f"{self.name}: nbgrader {action} {assignment}: {answer.status_code} {answer.text[:500]}")
        return result.get("value")

    # ----- formgrader, the course's hub service ------------------------------------------------------

    def formgrader(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.base_url}/services/{COURSE_ID}/formgrader{path}",
            headers=self.headers,
            timeout=max(self.timeout, 300),
            **kwargs,
        )
