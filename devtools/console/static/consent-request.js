// The consent request page: copy the email (subject and body) to the clipboard.
"use strict";

document.getElementById("copy-email").addEventListener("click", async () => {
  const text = document.getElementById("email-text").value;
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // No clipboard permission (an http origin other than localhost): select the text instead.
    const body = document.getElementById("email-body");
    const range = document.createRange();
    range.selectNodeContents(body);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  document.getElementById("copied").hidden = false;
});
