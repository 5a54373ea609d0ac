def main(argv=None) -> int:
    print("klspec")
    return 0
