// The completion page is only rendered after the server stored the last answer, so sending the
// participant back to the crowd platform is safe. The URL comes from a JSON data block.
(function () {
  const url = JSON.parse(document.getElementById("completion-url").textContent);
  setTimeout(() => { window.location.href = url; }, 4000);
})();
