[
  inputs: [
    "{mix,.formatter}.exs",
    "{config,lib,test,examples}/**/*.{ex,exs}",
    "../scripts/demo.exs"
  ]
]
