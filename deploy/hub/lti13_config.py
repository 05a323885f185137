"""The class hub with LTI 1.3 logins from the LMS (Canvas, Moodle, ...) instead of PAM: an example.

Run it with `python -m course_lib.hub start --config deploy/hub/lti13_config.py` after registering
the hub as an LTI 1.3 tool in the LMS (docs/hub.md, "LTI 1.3"). Replace every value below with what
the LMS shows for your registration. Each LTI user name must still be a Unix account from the
roster (servers run as that account), so choose `username_key` to give the same names as the roster.
tests/test_hub_config.py loads this file and checks the authenticator accepts it.
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821  # pyright: ignore[reportUndefinedVariable]
load_subconfig(str(Path(__file__).with_name("jupyterhub_config.py")))  # noqa: F821  # pyright: ignore[reportUndefinedVariable]

c.JupyterHub.authenticator_class = "ltiauthenticator.lti13.auth.LTI13Authenticator"
# Canvas cloud's values; a self-hosted Moodle uses https://moodle.example.edu and its /mod/lti/*.php pages.
c.LTI13Authenticator.issuer = os.environ.get("COURSE_LTI_ISSUER", "https://canvas.instructure.com")
c.LTI13Authenticator.authorize_url = "https://sso.canvaslms.com/api/lti/authorize_redirect"
c.LTI13Authenticator.jwks_endpoint = "https://sso.canvaslms.com/api/lti/security/jwks"
c.LTI13Authenticator.client_id = {os.environ.get("COURSE_LTI_CLIENT_ID", "10000000000001")}
# The LMS login id, sent as a custom parameter `uname=$Canvas.user.loginId` in the tool's settings.
c.LTI13Authenticator.username_key = "custom_uname"
c.LTI13Authenticator.tool_name = "TensorFlow course"
c.LTI13Authenticator.tool_description = "JupyterLab with the course kernel, nbgrader assignments"
