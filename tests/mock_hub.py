"""A local mock of the ModelScope and Hugging Face hubs, speaking what the real client libraries call.

Bound to 127.0.0.1 on a free port. It also answers as the HTTP(S) proxy of the clients under test, so a request
meant for any other host is recorded in `escaped` (and refused) instead of leaving the machine.

Protocol (read off the installed clients: huggingface_hub 2.x, modelscope 1.40 / modelscope_hub 0.5):

Hugging Face (HF_ENDPOINT=http://127.0.0.1:PORT)
  GET  /api/{models|datasets}/{id}[/revision/{rev}]       repo info: sha + siblings
  GET  /api/{models|datasets}/{id}/tree/{rev}[/{path}]     file tree (datasets' builder listing)
  HEAD|GET /{id}/resolve/{rev}/{file}, /datasets/{id}/resolve/{rev}/{file}   file (Range honoured)
  errors: X-Error-Code RepoNotFound (404), GatedRepo (401 without a token, 403 with the wrong one)
ModelScope (MODELSCOPE_ENDPOINT=http://127.0.0.1:PORT)
  GET  /api/v1/models/{id}/repo/files?Revision=..&Recursive=..         {"Code":200,"Data":{"Files":[...]}}
  GET  /api/v1/datasets/{id}/repo/tree?Revision=..&PageNumber=..       same, paged
  GET  /api/v1/{models|datasets}/{id}/repo?Revision=..&FilePath=..     the file (Range honoured)
  GET  /api/v1/{models|datasets}/{id}[/revisions]                     repo info
Uploads (push_to_hub) are recorded in `uploads` as {(hub, repo_id): {path: bytes}}.
"""
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

SHA = "0123456789abcdef0123456789abcdef01234567"
GOOD_TOKEN = "hf_mock_token"


class Repo:
    def __init__(self, files: Dict[str, bytes], *, gated: bool = False):
        self.files = dict(files)
        self.gated = gated


class MockHub:
    """`repos[(hub, kind, repo_id)] = Repo(...)`, hub 'hf'|'modelscope', kind 'model'|'dataset'."""

    def __init__(self):
        self.repos: Dict[Tuple[str, str, str], Repo] = {}
        self.requests: List[Tuple[str, str]] = []
        self.escaped: List[str] = []
        self.uploads: Dict[Tuple[str, str], Dict[str, bytes]] = {}
        self.blobs: Dict[str, bytes] = {}
        self.lock = threading.Lock()
        # black-hole mode: connections are accepted and requests read, but never answered (a firewall that drops
        # packets, a hub that hangs); `swallowed` counts the requests left waiting
        self.black_hole = False
        self.swallowed: List[str] = []
        self.released = threading.Event()
        hub = self

        class Handler(_Handler):
            mock = hub

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, hub: str, kind: str, repo_id: str, files: Dict[str, bytes], gated: bool = False) -> None:
        self.repos[(hub, kind, repo_id)] = Repo(files, gated=gated)

    def start(self) -> "MockHub":
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def env(self) -> Dict[str, str]:
        """Environment for a subprocess whose hub clients must talk to this mock only."""
        return {"HF_ENDPOINT": self.url, "MODELSCOPE_ENDPOINT": self.url, "HF_UPDATE_DOWNLOAD_COUNTS": "false",
                "HTTP_PROXY": self.url, "HTTPS_PROXY": self.url, "http_proxy": self.url, "https_proxy": self.url,
                "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1", "MODELSCOPE_LOG_LEVEL": "40",
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1", "DO_NOT_TRACK": "1"}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    mock: MockHub
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    # ------------------------------------------------------------ plumbing
    def _send(self, status: int, body: bytes = b"", headers: Optional[dict] = None, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj, headers=None):
        self._send(status, json.dumps(obj).encode(), headers)

    def _file(self, data: bytes, headers: dict):
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and int(m.group(1)) < len(data):
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            headers = dict(headers, **{"Content-Range": f"bytes {start}-{end}/{len(data)}", "Accept-Ranges": "bytes"})
            return self._send(206, data[start:end + 1], headers, "application/octet-stream")
        return self._send(200, data, dict(headers, **{"Accept-Ranges": "bytes"}), "application/octet-stream")

    def _token(self) -> Optional[str]:
        auth = self.headers.get("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        cookie = self.headers.get("Cookie") or ""
        m = re.search(r"m_session_id=([^;]+)", cookie)
        return m.group(1) if m else None

    def _handle(self):
        target = self.path
        if self.mock.black_hole:
            with self.mock.lock:
                self.mock.swallowed.append(f"{self.command} {target}")
            self.mock.released.wait()
            self.close_connection = True
            return None
        if self.command == "CONNECT" or not target.startswith("/"):
            with self.mock.lock:
                self.mock.escaped.append(f"{self.command} {target}")
            return self._send(403, b'{"error": "mock hub: no requests leave this machine"}')
        with self.mock.lock:
            self.mock.requests.append((self.command, target))
        parts = urlsplit(target)
        path, query = unquote(parts.path), {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            if path.startswith("/api/v1/"):
                return self._modelscope(path[len("/api/v1/"):], query)
            if path.startswith("/openapi/v1/"):
                return self._modelscope_openapi(path[len("/openapi/v1/"):], query)
            return self._hf(path, query)
        except BrokenPipeError:
            pass

    do_GET = do_HEAD = do_POST = do_PUT = do_CONNECT = _handle

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _access(self, hub: str, kind: str, repo_id: str):
        """(repo, None) or (None, error already sent)."""
        repo = self.mock.repos.get((hub, kind, repo_id))
        if repo is None:
            if hub == "hf":
                self._json(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound",
                                                                    "X-Error-Message": "Repository not found"})
            else:
                self._json(404, {"Code": 10010205001, "Message": f"{kind} {repo_id} not exists",
                                 "Success": False})
            return None
        if repo.gated and self._token() != GOOD_TOKEN:
            status = 401 if self._token() is None else 403
            if hub == "hf":
                self._json(status, {"error": "gated"}, {"X-Error-Code": "GatedRepo",
                                                        "X-Error-Message": "Access to this repo is restricted"})
            else:
                self._json(status, {"Code": 10010203003, "Message": "no permission to access this repo",
                                    "Success": False})
            return None
        return repo

    # ------------------------------------------------------------ Hugging Face
    def _hf(self, path: str, query: dict):
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)(?:/revision/([^/]+))?", path)
        if m and self.command == "GET":
            kind = m.group(1)[:-1]
            repo = self._access("hf", kind, m.group(2))
            if repo:
                self._json(200, {"id": m.group(2), "sha": SHA, "private": False, "gated": False,
                                 "siblings": [{"rfilename": f} for f in sorted(repo.files)], "cardData": {}})
            return
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/tree/([^/]+)(?:/(.*))?", path)
        if m and self.command == "GET":
            repo = self._access("hf", m.group(1)[:-1], m.group(2))
            if repo:
                self._json(200, self._hf_tree(repo, m.group(4) or "", query.get("recursive") in ("1", "true", "True")))
            return
        m = re.fullmatch(r"/api/(models|datasets)/([^/]+/[^/]+)/paths-info/([^/]+)", path)
        if m and self.command == "POST":
            self._body()
            repo = self._access("hf", m.group(1)[:-1], m.group(2))
            if repo:
                self._json(200, self._hf_tree(repo, "", True))
            return
        m = re.fullmatch(r"/(datasets/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            kind = "dataset" if m.group(1) else "model"
            repo = self._access("hf", kind, m.group(2))
            if not repo:
                return
            data = repo.files.get(m.group(4))
            if data is None:
                return self._json(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound"})
            return self._file(data, {"X-Repo-Commit": SHA, "ETag": f'"{_sha256(data)}"'})
        if path == "/api/agent-harnesses":
            return self._json(200, [])
        if path.startswith("/api/"):
            return self._hf_upload(path, query)
        return self._json(404, {"error": f"mock hub: no route {path}"})

    @staticmethod
    def _hf_tree(repo: Repo, prefix: str, recursive: bool) -> list:
        prefix = prefix.strip("/")
        out, dirs = [], set()
        for name, data in sorted(repo.files.items()):
            if prefix and not name.startswith(prefix + "/"):
                continue
            rest = name[len(prefix) + 1:] if prefix else name
            if "/" in rest and not recursive:
                d = (prefix + "/" if prefix else "") + rest.split("/")[0]
                if d not in dirs:
                    dirs.add(d)
                    out.append({"type": "directory", "path": d, "oid": SHA})
                continue
            out.append({"type": "file", "path": name, "size": len(data), "oid": _sha256(data)[:40]})
        return out

    def _hf_upload(self, path: str, query: dict):
        """Uploads: repo creation, preupload (everything regular, no LFS) and the NDJSON commit."""
        body = self._body()
        if path == "/api/whoami-v2":
            if self._token() != GOOD_TOKEN:
                return self._json(401, {"error": "Invalid credentials in Authorization header"},
                                  {"X-Error-Message": "Invalid credentials in Authorization header"})
            return self._json(200, {"name": "mock-user", "type": "user", "auth": {"type": "access_token"}})
        if path == "/api/repos/create" and self.command == "POST":
            if self._token() != GOOD_TOKEN:
                return self._json(401, {"error": "Invalid credentials"},
                                  {"X-Error-Message": "Invalid credentials in Authorization header"})
            spec = json.loads(body or b"{}")
            repo_id = f"{spec.get('organization') or 'mock-user'}/{spec['name']}"
            self.mock.uploads.setdefault(("hf", repo_id), {})
            self.mock.repos.setdefault(("hf", "model", repo_id), Repo({}))
            return self._json(200, {"url": f"{self.mock.url}/{repo_id}", "name": repo_id})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/([^/]+)", path)
        if m:
            files = json.loads(body or b"{}").get("files", [])
            return self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                              for f in files]})
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/([^/]+)", path)
        if m and self.command == "POST":
            if self._token() != GOOD_TOKEN:
                return self._json(401, {"error": "Invalid credentials"})
            import base64
            got = self.mock.uploads.setdefault(("hf", m.group(1)), {})
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item.get("key") == "file":
                    v = item["value"]
                    got[v["path"]] = base64.b64decode(v["content"])
            repo = self.mock.repos.setdefault(("hf", "model", m.group(1)), Repo({}))
            repo.files.update(got)
            return self._json(200, {"commitUrl": f"{self.mock.url}/{m.group(1)}/commit/{SHA}", "commitOid": SHA,
                                    "commitMessage": "upload", "pullRequestUrl": None})
        return self._json(404, {"error": f"mock hub: no route {path}"})

    # ------------------------------------------------------------ ModelScope
    def _modelscope(self, path: str, query: dict):
        if self.command in ("POST", "PUT") or path.startswith("repos/"):
            return self._modelscope_upload(path, query)
        m = re.fullmatch(r"(models|datasets)/([^/]+/[^/]+)(?:/(.*))?", path)
        if not m:
            return self._json(404, {"Code": 404, "Message": f"mock hub: no route {path}", "Success": False})
        kind, repo_id, rest = m.group(1)[:-1], m.group(2), m.group(3) or ""
        repo = self._access("modelscope", kind, repo_id)
        if not repo:
            return
        if rest in ("repo/files", "repo/tree"):
            page = int(query.get("PageNumber", "1"))
            size = int(query.get("PageSize", "100000"))
            root = (query.get("Root") or "/").strip("/")
            entries = [{"Path": p, "Name": p.rsplit("/", 1)[-1], "Type": "blob", "Size": len(d),
                        "Sha256": _sha256(d), "Revision": SHA, "IsLFS": False}
                       for p, d in sorted(repo.files.items()) if not root or p.startswith(root + "/")]
            chunk = entries[(page - 1) * size: page * size]
            return self._json(200, {"Code": 200, "Success": True, "Data": {"Files": chunk},
                                    "TotalCount": len(entries)})
        if rest == "repo":
            data = repo.files.get(query.get("FilePath", ""))
            if data is None:
                return self._json(404, {"Code": 404, "Message": "file not exists", "Success": False})
            return self._file(data, {"ETag": f'"{_sha256(data)}"'})
        if rest == "revisions":
            return self._json(200, {"Code": 200, "Success": True, "Data": {"RevisionMap": {
                "Branches": [{"Revision": "master", "CreatedAt": 1700000000}], "Tags": []}}})
        if rest == "":
            return self._json(200, {"Code": 200, "Success": True, "Data": {"Id": 1, "Path": repo_id.split("/")[0],
                                                                           "Name": repo_id.split("/")[1]}})
        return self._json(404, {"Code": 404, "Message": f"mock hub: no route {path}", "Success": False})

    def _modelscope_upload(self, path: str, query: dict):
        """Login, repo creation, the LFS batch + blob PUT, and the commit of ModelScope's upload_folder."""
        import base64

        body = self._body()
        ok = {"Code": 200, "Success": True}
        if path == "login":
            token = json.loads(body or b"{}").get("AccessToken")
            if token != GOOD_TOKEN:
                return self._json(401, {"Code": 10010201001, "Message": "invalid token", "Success": False})
            return self._json(200, dict(ok, Data={"AccessToken": token, "Username": "mock-user"}),
                              {"Set-Cookie": f"m_session_id={token}; Path=/"})
        if self._token() != GOOD_TOKEN:
            return self._json(401, {"Code": 10010201001, "Message": "login first", "Success": False})
        if path == "models" and self.command == "POST":
            spec = json.loads(body or b"{}")
            repo_id = f"{spec.get('Path')}/{spec.get('Name')}"
            self.mock.repos.setdefault(("modelscope", "model", repo_id), Repo({}))
            self.mock.uploads.setdefault(("modelscope", repo_id), {})
            return self._json(200, dict(ok, Data={"Path": spec.get("Path"), "Name": spec.get("Name")}))
        m = re.fullmatch(r"repos/models/([^/]+/[^/]+)/info/lfs/objects/batch", path)
        if m:
            objects = json.loads(body or b"{}").get("objects", [])
            return self._json(200, dict(ok, Data={"objects": [
                {"oid": o["oid"], "size": o.get("size"),
                 "actions": {"upload": {"href": f"{self.mock.url}/api/v1/repos/blobs/{o['oid']}"}}}
                for o in objects]}))
        m = re.fullmatch(r"repos/blobs/([0-9a-f]+)", path)
        if m and self.command == "PUT":
            self.mock.blobs[m.group(1)] = body
            return self._json(200, dict(ok, Data={"oid": m.group(1)}))
        m = re.fullmatch(r"repos/models/([^/]+/[^/]+)/commit/([^/]+)", path)
        if m and self.command == "POST":
            got = self.mock.uploads.setdefault(("modelscope", m.group(1)), {})
            for action in json.loads(body or b"{}").get("actions", []):
                if action.get("type") == "lfs":
                    got[action["path"]] = self.mock.blobs[action["sha256"]]
                else:
                    got[action["path"]] = base64.b64decode(action.get("content") or "")
            repo = self.mock.repos.setdefault(("modelscope", "model", m.group(1)), Repo({}))
            repo.files.update(got)
            return self._json(200, dict(ok, Data={"CommitId": SHA}))
        return self._json(404, {"Code": 404, "Message": f"mock hub: no route {path}", "Success": False})

    def _modelscope_openapi(self, path: str, query: dict):
        """The OpenAPI calls modelscope_hub makes around an upload (who am I, does the repo exist)."""
        self._body()
        if self._token() != GOOD_TOKEN:
            return self._json(401, {"success": False, "message": "login first"})
        if path == "users/me":
            return self._json(200, {"success": True, "data": {"Username": "mock-user"}})
        m = re.fullmatch(r"models/([^/]+/[^/]+)", path)
        if m and self.command == "GET":
            if ("modelscope", "model", m.group(1)) not in self.mock.repos:
                return self._json(404, {"success": False, "message": "model not exists"})
            return self._json(200, {"success": True, "data": {"id": m.group(1)}})
        return self._json(404, {"success": False, "message": f"mock hub: no route {path}"})
