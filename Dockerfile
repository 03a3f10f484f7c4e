# One image for web, worker and beat (docker-compose.yml; house-style 17).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# The runtime dependencies first, exactly as pinned in pyproject.toml (no dev extras), so that a
# code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The H-Mix version the image runs (a git tag or commit), recorded because the image holds no
# .git: dataset bundles cite it (analysis/bundle.py, docs/deployment.md#version). Build with
#   docker compose build --build-arg HMIX_VERSION="$(git describe --tags --always --dirty)"
# Declared after the dependencies, so a new version does not reinstall them.
ARG HMIX_VERSION=""
ENV HMIX_VERSION=${HMIX_VERSION}
LABEL org.opencontainers.image.title="H-Mix" \
      org.opencontainers.image.version="${HMIX_VERSION}"

COPY . .

# Editable, so that BASE_DIR stays /app, where templates/ and static/ live. collectstatic needs
# production settings, which refuse a weak key and need a cache URL: a random key and a cache
# nothing connects to, for this build step only.
RUN pip install --no-deps --editable . \
    && DJANGO_SETTINGS_MODULE=hmix_site.settings.production \
       DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
       HMIX_CACHE_URL=redis://collectstatic-only:6379/0 \
       python manage.py collectstatic --noinput \
    && useradd --system --create-home --uid 10001 hmix \
    && mkdir -p /app/media \
    && chown hmix:hmix /app/media

USER hmix

EXPOSE 8000
# gunicorn.conf.py holds the server settings, each explained (sizes from WEB_CONCURRENCY and
# GUNICORN_* in the environment, see .env.example).
CMD ["gunicorn", "--config", "gunicorn.conf.py", "hmix_site.wsgi"]
