"""Where media live: the STORAGES["default"] entry for local files or an S3-compatible bucket.

Media are the source images of image sets, stimulus and frame images, and jobs' uploads and
results. Every read and write goes through the storage API (FieldFile.open/save,
default_storage), never a local path, so the same code runs on either backend. Settings build
the entry from the environment (base.py); the S3 test builds it for its own server.
"""

from typing import Any

FILE_SYSTEM_STORAGE: dict[str, Any] = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

# Presigned URLs are never handed to participants (images are streamed through the app), so
# only the admin's file links use them: long enough to click, short enough not to be shared.
S3_URL_EXPIRE_SECONDS = 10 * 60
# django-storages reads an object into a spooled temporary file before serving it; past this
# size it spills to disk, so a multi-gigabyte bundle download does not sit in memory (the
# library's default, 0, never spills).
S3_MAX_MEMORY_BYTES = 5 * 1024 * 1024


def s3_storage(
    *,
    bucket: str,
    endpoint_url: str = "",
    region: str = "",
    access_key_id: str = "",
    secret_access_key: str = "",
    prefix: str = "",
    addressing_style: str = "",
) -> dict[str, Any]:
    """The STORAGES entry for a private bucket on AWS S3 or any S3-compatible server.

    Empty values fall back to boto3's own defaults: no endpoint is AWS, no keys is boto3's
    credential chain (AWS_* variables, a profile, an instance or task role).
    """
    options: dict[str, Any] = {
        "bucket_name": bucket,
        "location": prefix.strip("/"),
        # No ACL header: objects stay private (S3's default), and buckets with ACLs disabled
        # (AWS's default since 2023) refuse any canned ACL but bucket-owner-full-control.
        "default_acl": None,
        "querystring_auth": True,
        "querystring_expire": S3_URL_EXPIRE_SECONDS,
        # Like FileSystemStorage: a name that is taken gets a suffix instead of replacing the
        # object another host may be serving.
        "file_overwrite": False,
        "max_memory_size": S3_MAX_MEMORY_BYTES,
        # MinIO, Ceph and most self-hosted servers only answer path-style requests
        # (endpoint/bucket/key); AWS itself prefers virtual-hosted ones.
        "addressing_style": addressing_style or ("path" if endpoint_url else "auto"),
    }
    if endpoint_url:
        options["endpoint_url"] = endpoint_url
    if region:
        options["region_name"] = region
    if access_key_id or secret_access_key:
        options["access_key"] = access_key_id
        options["secret_key"] = secret_access_key
    return {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}
