"""The admin page's answers over plain HTTP: the page needs the key, its assets do not (they hold
no data), and every one of them carries a CSP without inline script and with frame-ancestors 'none'."""
import requests

from tests.fixtures.local_host import LOCAL_KEY


def test_page_and_assets_are_served_with_a_strict_csp(app_host):
    base = app_host.url + "/api/admin"
    assert requests.get(base, timeout=10).status_code == 401
    page = requests.get(base, params={"code": LOCAL_KEY}, timeout=10)
    assert page.status_code == 200 and 'src="admin/admin.js"' in page.text and "<script>" not in page.text
    assert " style=" not in page.text  # no inline style either
    for path, media in (("", "text/html"), ("/admin.js", "text/javascript"), ("/admin.css", "text/css"),
                        ("/texts.json", "application/json")):
        r = requests.get(base + path, params={"code": LOCAL_KEY} if not path else None, timeout=10)
        assert r.status_code == 200 and r.headers["Content-Type"].startswith(media), path
        csp = r.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "script-src 'self'" in csp
        assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
    texts = requests.get(base + "/texts.json", timeout=10).json()
    assert texts["messages"]["MFA_ENABLED"] == "This account has multi-factor authentication enabled."
    assert "NO_GHOST_GUEST_USERS_RULE" in texts["limitations"]
