"""``login``: sign in with a browser once and keep the OAuth token in a private file.

Google's installed-app flow (``google-auth-oauthlib``, the ``login`` extra) with the scopes the Drive
transport asks for; the token file is what ``SYFT_FLWR_TOKEN_FILE`` then points at.
"""

from __future__ import annotations

from pathlib import Path

from syft_flwr_gdrive.base.config import ConfigError


def save_oauth_token(client_secret: Path, token_file: Path, *, port: int = 0) -> Path:
    """Run the browser sign-in with ``client_secret`` (a Desktop-app OAuth client) and save the token to
    ``token_file``, readable by its owner only; ``port`` 0 lets the redirect take any free port."""
    if not client_secret.is_file():
        raise ConfigError(
            f"{client_secret} does not exist. Download an OAuth client (type Desktop app) JSON from "
            "the Google Cloud console > APIs & Services > Credentials."
        )
    try:
        from google_auth_oauthlib.flow import InstalledAppFlow
    except ImportError:
        raise ConfigError("login needs google-auth-oauthlib: pip install 'syft-flwr-gdrive[login]'.") from None
    from syft_flwr_gdrive.transport.drive.auth import SCOPES

    flow = InstalledAppFlow.from_client_secrets_file(str(client_secret), scopes=list(SCOPES))
    creds = flow.run_local_server(port=port, open_browser=True)
    token_file.write_text(creds.to_json(), encoding="utf-8")
    token_file.chmod(0o600)
    return token_file
