from hmix_site.env import env
from hmix_site.settings.base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)
