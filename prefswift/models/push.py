"""`--push_to_hub true --hub_model_id ID [--hub_private_repo true] [--hub_token T]`: upload a folder (the final
adapter, or the merged model of merge-lora) to the hub the run used.

`check_push` runs before training (a missing id or token is refused before hours of work); `push_folder` runs at
the end. Both hubs go through their client's public API: huggingface_hub.HfApi.create_repo + upload_folder, and
modelscope.hub.api.HubApi.create_repo + upload_folder.
"""
import importlib
import os
from typing import Optional

from ..errors import ArgumentError, PrefswiftError
from ..registry.hub_client import LOGIN_HINT, failure_kind, first_line
from ..registry.hubs import HUB_NAMES, which_hub


def stored_token(hub: str) -> Optional[str]:
    """The token the hub client would use by itself (env var or saved login), or None."""
    if hub == "hf":
        try:
            return importlib.import_module("huggingface_hub").get_token()
        except Exception:  # noqa: BLE001 - no client, no token
            return os.environ.get("HF_TOKEN") or None
    try:  # MODELSCOPE_API_TOKEN, else the login `modelscope login` saved
        return importlib.import_module("modelscope_hub.config").get_default_config().token or None
    except Exception:  # noqa: BLE001 - no client, no token
        return os.environ.get("MODELSCOPE_API_TOKEN") or None


def check_push(push_to_hub: bool, hub_model_id: Optional[str], hub: Optional[str], token: Optional[str]) -> None:
    """Refuse, before any work, a push that cannot succeed: no repo id, a malformed one, or no token."""
    if not push_to_hub:
        return
    which = which_hub(hub)
    if not hub_model_id:
        raise ArgumentError("--push_to_hub true needs --hub_model_id OWNER/NAME (the repo to create or update on "
                            f"{HUB_NAMES[which]})")
    if hub_model_id.count("/") != 1 or not all(hub_model_id.split("/")):
        raise ArgumentError(f"--hub_model_id {hub_model_id!r}: expected OWNER/NAME")
    if not (token or stored_token(which)):
        raise ArgumentError(f"--push_to_hub true: no {HUB_NAMES[which]} token — {LOGIN_HINT[which]}")


def push_folder(folder: str, hub_model_id: str, *, hub: Optional[str], token: Optional[str] = None,
                private: bool = False, message: str = "prefswift: upload", log=print) -> str:
    """Create the repo when missing (private on request) and upload `folder`; the repo's URL."""
    which = which_hub(hub)
    if not os.path.isdir(folder):
        raise PrefswiftError(f"--push_to_hub: nothing to upload, {folder} is not a directory")
    try:
        if which == "hf":
            hf = importlib.import_module("huggingface_hub")
            api = hf.HfApi(token=token)
            url = str(api.create_repo(hub_model_id, private=private, exist_ok=True))
            api.upload_folder(repo_id=hub_model_id, folder_path=folder, commit_message=message)
        else:
            ms_api = importlib.import_module("modelscope.hub.api").HubApi()
            if token:
                ms_api.login(token)
            visibility = "private" if private else "public"
            if not ms_api.repo_exists(hub_model_id):
                ms_api.create_repo(hub_model_id, visibility=visibility, exist_ok=True)
            ms_api.upload_folder(repo_id=hub_model_id, folder_path=folder, commit_message=message)
            url = f"{os.environ.get('MODELSCOPE_ENDPOINT', 'https://modelscope.cn').rstrip('/')}/models/{hub_model_id}"
    except Exception as e:  # noqa: BLE001 - one line per failure kind
        kind = failure_kind(e)
        fix = LOGIN_HINT[which] if kind == "auth" else ("check the network; the files are still in " + folder)
        raise PrefswiftError(f"could not push {folder} to {HUB_NAMES[which]} repo {hub_model_id}: "
                             f"{first_line(e, 160)} — {fix}") from None
    log(f"[push] {folder} -> {HUB_NAMES[which]} {hub_model_id}")
    return url


def push_result(args, folder, log=print) -> None:
    """--push_to_hub true: upload `folder` to --hub_model_id on --hub (checked before any work by `check_push`)."""
    push = args.push
    if push is None or not push.push_to_hub:
        return
    push_folder(str(folder), push.hub_model_id, hub=args.model.hub, token=args.model.hub_token,
                private=push.hub_private_repo, log=log)
