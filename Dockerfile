FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    PORT=8000 WORKERS=4

WORKDIR /srv/app
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --uid 10001 --home /srv/app app \
    && mkdir -p instance && chown -R app:app instance
USER app

EXPOSE 8000
# Migrations first, then gunicorn replaces the shell (signals reach it); logs go to stdout.
CMD ["sh", "-c", "flask --app wsgi db upgrade && exec gunicorn --workers \"$WORKERS\" --bind \"0.0.0.0:$PORT\" --access-logfile - --error-logfile - --forwarded-allow-ips='*' wsgi:app"]
