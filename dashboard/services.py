from django.db import transaction
from rest_framework.authtoken.models import Token


@transaction.atomic
def api_token_create(*, user_id: int) -> Token:
    """A fresh API token for the user; any previous one stops working (DRF keeps one per user)."""
    Token.objects.filter(user_id=user_id).delete()
    token = Token(user_id=user_id)
    token.save()
    return token


@transaction.atomic
def api_token_revoke(*, user_id: int) -> int:
    deleted, _ = Token.objects.filter(user_id=user_id).delete()
    return deleted
