from hmix_site.env import env
from hmix_site.settings.base import *  # noqa: F403

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# The demo's researcher login (README) is only created here and in the tests.
HMIX_DEMO_LOGIN_ALLOWED = True
