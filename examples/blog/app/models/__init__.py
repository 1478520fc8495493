"""The blog's models. They refer to each other as ``models.Post`` (this package) inside
``lambda``s, so the modules can import one another in any order."""

from lucid_orm import morph_map

from .comment import Comment
from .country import Country
from .like import Like
from .post import Post
from .profile import Profile
from .tag import Tag
from .user import User

# The names stored in ``likes.likeable_type``: stable aliases, so renaming a class never orphans
# its rows.
morph_map({"post": Post, "comment": Comment})

__all__ = ["Comment", "Country", "Like", "Post", "Profile", "Tag", "User"]
