from cellctl.entry import main

main()
