from paperfeed.cli.main import main

main()
