from django.db.models import QuerySet

from jobs.models import Job


def job_list_for_user(*, user_id: int | None) -> QuerySet[Job]:
    if user_id is None:
        return Job.objects.none()
    return Job.objects.filter(owner_id=user_id).select_related("study").order_by("-created_at")


def job_get_for_user(*, public_id: str, user_id: int | None) -> Job | None:
    return job_list_for_user(user_id=user_id).filter(public_id=public_id).first()
