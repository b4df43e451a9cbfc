// Email first on the sign-in page: once an address is typed, ask which provider its domain routes to; for a
// single sign-on address hide the password and say where "Continue" goes. The server routes the same way
// without this script (an empty password with such an address starts single sign-on).
import "./i18n.js"; // gettext() even where no catalogue loaded
const form = document.querySelector("[data-sso-route]");
if (form) {
  const email = form.querySelector("input[name=login]");
  const password = form.querySelector("input[name=password]");
  const passwordBox = password ? password.closest("p, div") || password.parentElement : null;
  const button = form.querySelector("[data-testid=sign-in]");
  const hint = form.querySelector("[data-testid=sso-hint]");
  const usePassword = form.querySelector("[data-testid=use-password]");
  let asked = "";
  let passwordChosen = false;

  const show = (route) => {
    const sso = route.sso && !passwordChosen;
    if (passwordBox) passwordBox.hidden = sso;
    if (password && sso) password.value = "";
    button.textContent = sso
      ? interpolate(gettext("Continue with %s"), [route.provider])
      : button.dataset.label;
    hint.hidden = !sso;
    hint.textContent = sso
      ? interpolate(gettext("Your organisation signs in through %s."), [route.provider])
      : "";
    usePassword.hidden = !(sso && route.password_allowed);
  };

  const ask = async () => {
    const value = email.value.trim();
    if (!value.includes("@") || value === asked) return;
    asked = value;
    try {
      const answer = await fetch(`${form.dataset.ssoRoute}?${new URLSearchParams({ email: value })}`, {
        headers: { Accept: "application/json" },
      });
      if (answer.ok && email.value.trim() === value) show(await answer.json());
    } catch {
      // Offline or refused: the form still works, the server routes the address.
    }
  };

  let timer;
  email.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(ask, 250);
  });
  email.addEventListener("change", ask);
  usePassword.querySelector("a").addEventListener("click", (event) => {
    event.preventDefault();
    passwordChosen = true;
    show({ sso: false });
    password.focus();
  });
  if (email.value) ask();
}
