"""Extensions, created unbound and bound in ``create_app``."""
from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

db = SQLAlchemy(metadata=MetaData(naming_convention=naming_convention))
migrate = Migrate()


def _limiter_key():
    # Replaced per limit; the default only applies to unlisted routes.
    from flask_limiter.util import get_remote_address

    return get_remote_address()


limiter = Limiter(key_func=_limiter_key, default_limits=[])
