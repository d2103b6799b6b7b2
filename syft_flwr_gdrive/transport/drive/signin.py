"""Where a participant's Google sign-in comes from, and the error when Google stops refreshing it.

A sign-in Google no longer refreshes (an expired or revoked refresh token, a deleted service-account
key) is the most common failure of a run that lasts: an OAuth app in "Testing" publishing status gets
refresh tokens that expire after 7 days, so a federation fails in its second week. Every Drive call
fails from then on, so the participant stops at once, and the message says what happened, how to log
in again for *this* source of credentials (a token file, a service account, ADC, Colab, a fake Drive)
and why it happens. :class:`SignIn` remembers the source; ``DriveApi`` hands it to the retry layer.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Literal

import google.auth.exceptions
from google.auth.credentials import Credentials
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

from syft_flwr_gdrive.base.logsafe import printable
from syft_flwr_gdrive.transport.drive.errors import DriveSignInRefused

__all__ = ["SignIn", "refresh_refusal"]

#: The one scope participants need (``auth`` says why not ``drive.file``)
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"

#: Google's token endpoints; credentials refreshed anywhere else belong to a stand-in (the fake Drive's ``/token``)
GOOGLE_TOKEN_HOSTS = frozenset({"oauth2.googleapis.com", "accounts.google.com", "www.googleapis.com"})
ADC_LOGIN = (
    f"gcloud auth application-default login --scopes={DRIVE_SCOPE},https://www.googleapis.com/auth/cloud-platform"
)
SignInKind = Literal["token_file", "service_account", "adc", "colab", "fake", "other"]


def refresh_refusal(exc: google.auth.exceptions.RefreshError) -> str:
    """What the token endpoint answered, as ``error: description`` in one bounded line (google-auth puts the
    answer's JSON in the exception's arguments, and the endpoint's text is not ours to print raw)."""
    args = exc.args
    answer = args[1] if len(args) > 1 and isinstance(args[1], dict) else None
    if answer is not None and answer.get("error"):
        text = f"{answer['error']}: {answer.get('error_description') or ''}".rstrip(": ")
    else:
        text = str(args[0]) if args else type(exc).__name__
    return printable(text, 160)


@dataclass(frozen=True)
class SignIn:
    """Where a participant's credentials came from, so that Google refusing to refresh them can say how to sign
    in again: ``kind`` of source, ``where`` its file or the fake Drive's URL ("" when unknown)."""

    kind: SignInKind = "other"
    where: str = ""

    @classmethod
    def of(cls, credentials: Credentials) -> SignIn:
        """A best guess from the credentials alone (``connect`` says exactly; this serves an API built by hand)."""
        if isinstance(credentials, service_account.Credentials):
            return cls("service_account")
        if isinstance(credentials, oauth2_credentials.Credentials):
            uri = credentials.token_uri or ""
            if uri and urllib.parse.urlsplit(uri).hostname not in GOOGLE_TOKEN_HOSTS:
                return cls("fake", uri.rsplit("/", 1)[0] + "/")
            return cls("token_file")
        return cls()

    def refused(self, exc: google.auth.exceptions.RefreshError, *, method: str | None = None) -> DriveSignInRefused:
        """The error for a refresh Google refused for good: what happened, how to sign in again, why it happens."""
        refusal = refresh_refusal(exc)
        answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
        oauth_error = printable(answer.get("error") or refusal.split(":", 1)[0], 60)
        return DriveSignInRefused(
            headline=self.headline(refusal), fix=self.fix(), why=self.why(), oauth_error=oauth_error, method=method
        )

    def headline(self, refusal: str) -> str:
        if self.kind == "fake":
            return (
                f"The fake Drive at {self.where} refused to refresh this participant's sign-in ({refusal}): it "
                "revoked the refresh token, as Google does when a sign-in expires or is revoked, so no Drive "
                "call can succeed."
            )
        if self.kind == "service_account":
            return (
                f"Google refused to issue an access token for the service account{self._in()} ({refusal}), so "
                "no Drive call can succeed."
            )
        return (
            f"Google refused to refresh this participant's sign-in ({refusal}): its refresh token{self._in()} "
            "has expired or was revoked, so no Drive call can succeed until it logs in again."
        )

    def fix(self) -> str:
        again = "then start this participant again."
        if self.kind == "token_file":
            token_file = self.where or "<your token file>"
            return (
                "log in again with `syft-flwr-gdrive login --client-secret <your OAuth client JSON> "
                f"--token-file {token_file}`, {again}"
            )
        if self.kind == "adc":
            return f"log in again with `{ADC_LOGIN}`, {again}"
        if self.kind == "colab":
            return f"run the notebook's log-in again (`google.colab.auth.authenticate_user()`), {again}"
        if self.kind == "service_account":
            return (
                "its key was deleted or disabled, or this machine's clock is wrong: create a new key (IAM > "
                f"Service accounts > Keys), point SYFT_FLWR_SERVICE_ACCOUNT_FILE at it, check the clock, {again}"
            )
        if self.kind == "fake":
            return "nothing to log in to on a fake Drive: restart the fake Drive (it forgets revocations), " + again
        return f"log in again the way these credentials were made (`syft-flwr-gdrive login`, `{ADC_LOGIN}`), {again}"

    def why(self) -> str:
        testing = (
            'an OAuth app whose publishing status is "Testing" gets refresh tokens that expire 7 days after sign-in'
        )
        if self.kind == "token_file":
            return (
                f"Why: {testing}, so a federation that runs longer stops in its second week; publish the app "
                "(Google Cloud console > Google Auth Platform > Audience > Publish app) to keep sign-ins, or expect "
                "to log in every week. A sign-in also ends when the account removes the app's access."
            )
        if self.kind == "fake":
            return f"On Google Drive this refusal means an expired or revoked refresh token: {testing} (publish it)."
        return ""

    def _in(self) -> str:
        return f" in {self.where}" if self.where else ""
