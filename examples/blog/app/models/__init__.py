"""The blog's models. They refer to each other as ``models.Post`` (this package) inside
``lambda``s, so the modules can import one another in any order."""

from .comment import Comment
from .country import Country
from .post import Post
from .profile import Profile
from .tag import Tag
from .user import User

__all__ = ["Comment", "Country", "Post", "Profile", "Tag", "User"]
