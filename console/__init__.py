"""The operator console (W4–W6): a web application for an account's staff, built only on
the four services' public HTTP APIs (through `shared.api_client`, as the `consentflow`
operator commands are): no database of its own, no Kafka.

- `settings.py`: where the services are and how the console runs (environment only)
- `sessions.py`: sign-in by API key, signed session cookies, CSRF tokens, the growing
  delay after a wrong key (no I/O)
- `screens.py`: what each screen asks the APIs and shows; `app.py`: the routes, the
  session and CSRF checks around them, and rendering in the operator's language
- `templates/`, `locale/`: Jinja2 templates and their gettext catalogue (English, German)

Run it with `consentflow console` or `python -m console`.
"""
