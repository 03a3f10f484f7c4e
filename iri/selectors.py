from django.db.models import QuerySet

from iri.models import Network


def network_list_for_user(*, user_id: int | None) -> QuerySet[Network]:
    """The user's own networks, by name (none for an anonymous user)."""
    if user_id is None:
        return Network.objects.none()
    return Network.objects.filter(owner_id=user_id).order_by("name")


def network_get_for_user(*, name: str, user_id: int | None) -> Network:
    """One of the user's networks by name; raises Network.DoesNotExist otherwise."""
    return network_list_for_user(user_id=user_id).get(name=name)
